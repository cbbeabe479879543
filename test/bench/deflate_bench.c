/* deflate_bench.c - the per-message compression permessage-deflate needs
 * (each message alone, no context), zlib against libdeflate, on the golden
 * corpus's real messages: CPU time per message (CLOCK_PROCESS_CPUTIME_ID,
 * median of runs) and the compression ratio, per format and level.
 * zlib: raw deflate + Z_SYNC_FLUSH, minus the 4-byte tail (what the server
 * sends, common/wsdeflate.c). libdeflate: a whole raw DEFLATE stream
 * (BFINAL set), the form libdeflate can write.
 *
 * usage: deflate_bench TESTDATA [runs (default 7)] [passes per run (default 200)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <libdeflate.h>

#include <zlib.h>

#include "common/wsdeflate.h"

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

#define MAXMSG 64

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA [runs] [passes]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 7, passes = argc > 3 ? atoi(argv[3]) : 200;
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/live_ct.json", argv[1]);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    if (!root || runs < 1 || runs > 99 || passes < 1) return 1;
    static const char *const keys[3] = { "expected_full", "expected_lite", "expected_domains_only" };
    static const char *const names[3] = { "full", "lite", "domains" };
    printf("| format | compressor | level | ratio | CPU us per message (median of %d) |\n|---|---|---|---|---|\n", runs);
    for (int k = 0; k < 3; k++) {
        const char *msg[MAXMSG];
        size_t len[MAXMSG], nm = 0, plain = 0;
        cJSON *r;
        cJSON_ArrayForEach(r, root) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, keys[k]);
            if (cJSON_IsString(v) && nm < MAXMSG) {
                msg[nm] = v->valuestring;
                len[nm] = strlen(v->valuestring);
                plain += len[nm++];
            }
        }
        static const int zl[] = { 1, 6, 9 }, dl[] = { 1, 6, 9, 12 };
        for (int which = 0; which < 2; which++) {
            int nl = which ? 4 : 3;
            for (int li = 0; li < nl; li++) {
                int level = which ? dl[li] : zl[li];
                struct wsdeflate *z = which ? NULL : wsdeflate_new(level);
                struct libdeflate_compressor *d = which ? libdeflate_alloc_compressor(level) : NULL;
                static uint8_t out[1 << 20];
                double t[99];
                size_t comp = 0;
                for (int run = 0; run < runs; run++) {
                    double t0 = cpu_seconds();
                    comp = 0;
                    for (int p = 0; p < passes; p++)
                        for (size_t i = 0; i < nm; i++) {
                            size_t c;
                            if (which) {
                                c = libdeflate_deflate_compress(d, msg[i], len[i], out, sizeof out);
                            } else {
                                const uint8_t *o;
                                c = wsdeflate_message(z, msg[i], len[i], &o);
                                if (c == 0) c = len[i];   /* sent plain */
                            }
                            comp += c;
                        }
                    t[run] = (cpu_seconds() - t0) / ((double)passes * (double)nm) * 1e6;
                }
                qsort(t, (size_t)runs, sizeof t[0], cmp_double);
                printf("| %s | %s | %d | %.2f | %.2f |\n", names[k], which ? "libdeflate" : "zlib", level,
                       (double)plain * passes / (double)comp, t[runs / 2]);
                wsdeflate_free(z);
                if (d) libdeflate_free_compressor(d);
            }
        }
        /* the stream's shared context (fanout/zchain.c): one zlib stream,
         * a sync flush per message, the corpus in sequence (it loops, as
         * the replay does; a message repeats 28 messages later, beyond the
         * 32 KiB window for lite and full) */
        static const int cl[] = { 1, 6 };
        for (int li = 0; li < 2; li++) {
            z_stream zs;
            memset(&zs, 0, sizeof zs);
            if (deflateInit2(&zs, cl[li], Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
            static uint8_t out[1 << 20];
            double t[99];
            size_t comp = 0;
            for (int run = 0; run < runs; run++) {
                double t0 = cpu_seconds();
                comp = 0;
                for (int p = 0; p < passes; p++)
                    for (size_t i = 0; i < nm; i++) {
                        zs.next_in = (Bytef *)(uintptr_t)msg[i];
                        zs.avail_in = (uInt)len[i];
                        zs.next_out = out;
                        zs.avail_out = sizeof out;
                        if (deflate(&zs, Z_SYNC_FLUSH) != Z_OK) return 1;
                        comp += sizeof out - zs.avail_out - 4;   /* the 00 00 ff ff tail is not sent */
                    }
                t[run] = (cpu_seconds() - t0) / ((double)passes * (double)nm) * 1e6;
            }
            qsort(t, (size_t)runs, sizeof t[0], cmp_double);
            printf("| %s | zlib, shared context (chained) | %d | %.2f | %.2f |\n", names[k], cl[li],
                   (double)plain * passes / (double)comp, t[runs / 2]);
            deflateEnd(&zs);
        }
    }
    cJSON_Delete(root);
    return 0;
}
