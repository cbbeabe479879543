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

#include <cjson/cJSON.h>
#include <libdeflate.h>

#include <zlib.h>

#include "benchlib.h"
#include "common/wsdeflate.h"

#define MAXMSG 64

/* The messages of one format, and the ways of compressing them measured. */
struct messages {
    const char *msg[MAXMSG];
    size_t len[MAXMSG], n, plain;
};

enum method { ZLIB_ALONE, LIBDEFLATE_ALONE, ZLIB_CHAINED };

struct compressor {
    enum method method;
    struct wsdeflate *z;                 /* ZLIB_ALONE: what the server uses (common/wsdeflate.c) */
    struct libdeflate_compressor *d;     /* LIBDEFLATE_ALONE */
    z_stream zs;                         /* ZLIB_CHAINED */
};

/* Compresses one message; *wire: the bytes a client would get. */
static int compress_one(struct compressor *c, const char *msg, size_t len, size_t *wire)
{
    static uint8_t out[1 << 20];
    switch (c->method) {
    case ZLIB_ALONE: {
        const uint8_t *o;
        *wire = wsdeflate_message(c->z, msg, len, &o);
        if (*wire == 0) *wire = len;   /* sent plain */
        return 0;
    }
    case LIBDEFLATE_ALONE:
        *wire = libdeflate_deflate_compress(c->d, msg, len, out, sizeof out);
        return 0;
    case ZLIB_CHAINED:
        c->zs.next_in = (Bytef *)(uintptr_t)msg;
        c->zs.avail_in = (uInt)len;
        c->zs.next_out = out;
        c->zs.avail_out = sizeof out;
        if (deflate(&c->zs, Z_SYNC_FLUSH) != Z_OK) return -1;
        *wire = sizeof out - c->zs.avail_out - 4;   /* the 00 00 ff ff tail is not sent */
        return 0;
    }
    return -1;
}

/* Every message `passes` times per run, `runs` runs: CPU us per message
 * (median of the runs) and the compression ratio. */
static int measure(struct compressor *c, const struct messages *m, int runs, int passes, double *us, double *ratio)
{
    double t[99];
    size_t comp = 0;
    for (int run = 0; run < runs; run++) {
        double t0 = bench_cpu_seconds();
        comp = 0;
        for (int p = 0; p < passes; p++)
            for (size_t i = 0; i < m->n; i++) {
                size_t w;
                if (compress_one(c, m->msg[i], m->len[i], &w) < 0) return -1;
                comp += w;
            }
        t[run] = (bench_cpu_seconds() - t0) / ((double)passes * (double)m->n) * 1e6;
    }
    *us = bench_median(t, (size_t)runs);
    *ratio = (double)m->plain * passes / (double)comp;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA [runs] [passes]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 7, passes = argc > 3 ? atoi(argv[3]) : 200;
    struct bench_corpus corpus;
    if (runs < 1 || runs > 99 || passes < 1 || bench_corpus_load(&corpus, argv[1]) < 0) return 1;
    static const char *const keys[3] = { "expected_full", "expected_lite", "expected_domains_only" };
    static const char *const names[3] = { "full", "lite", "domains" };
    printf("| format | compressor | level | ratio | CPU us per message (median of %d) |\n|---|---|---|---|---|\n", runs);
    for (int k = 0; k < 3; k++) {
        struct messages m = { .n = 0 };
        const cJSON *r;
        cJSON_ArrayForEach(r, corpus.json) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, keys[k]);
            if (cJSON_IsString(v) && m.n < MAXMSG) {
                m.msg[m.n] = v->valuestring;
                m.len[m.n] = strlen(v->valuestring);
                m.plain += m.len[m.n++];
            }
        }
        static const int zl[] = { 1, 6, 9 }, dl[] = { 1, 6, 9, 12 };
        for (int which = 0; which < 2; which++) {
            int nl = which ? 4 : 3;
            for (int li = 0; li < nl; li++) {
                int level = which ? dl[li] : zl[li];
                struct compressor c = { .method = which ? LIBDEFLATE_ALONE : ZLIB_ALONE };
                c.z = which ? NULL : wsdeflate_new(level);
                c.d = which ? libdeflate_alloc_compressor(level) : NULL;
                double us, ratio;
                if ((which ? !c.d : !c.z) || measure(&c, &m, runs, passes, &us, &ratio) < 0) return 1;
                printf("| %s | %s | %d | %.2f | %.2f |\n", names[k], which ? "libdeflate" : "zlib", level, ratio, us);
                wsdeflate_free(c.z);
                if (c.d) libdeflate_free_compressor(c.d);
            }
        }
        /* the stream's shared context (fanout/zchain.c): one zlib stream,
         * a sync flush per message, the corpus in sequence (it loops, as
         * the replay does; a message repeats 28 messages later, beyond the
         * 32 KiB window for lite and full) */
        static const int cl[] = { 1, 6 };
        for (int li = 0; li < 2; li++) {
            struct compressor c = { .method = ZLIB_CHAINED };
            if (deflateInit2(&c.zs, cl[li], Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
            double us, ratio;
            if (measure(&c, &m, runs, passes, &us, &ratio) < 0) return 1;
            printf("| %s | zlib, shared context (chained) | %d | %.2f | %.2f |\n", names[k], cl[li], ratio, us);
            deflateEnd(&c.zs);
        }
    }
    bench_corpus_free(&corpus);
    return 0;
}
