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
#include <sys/resource.h>

#include "benchlib.h"
#include "ingest/pipeline.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA [runs] [entries per run]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    long per_run = argc > 3 ? atol(argv[3]) : 200000;
    if (runs < 1 || runs > 101 || per_run < 1) return 2;
    struct bench_corpus corpus;
    if (bench_corpus_load(&corpus, argv[1]) < 0 || corpus.n == 0) return 2;
    const struct bench_entry *ents = corpus.entries;
    size_t nent = corpus.n;
    struct pipeline *p = pipeline_new();
    if (!p) return 2;
    double rate[101];
    size_t bytes = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = bench_cpu_seconds();
        for (long k = 0; k < per_run; k++) {
            const struct bench_entry *e = &ents[(size_t)k % nent];
            struct pipeline_out out;
            char err[256];
            if (pipeline_render_rfc6962(p, e->leaf, e->leaf_len, e->extra, e->extra_len, e->index, e->log_name,
                                        e->log_url, 1700000000.0 + (double)k / 1000.0, &out, err, sizeof err) < 0) {
                fprintf(stderr, "render failed: %s\n", err);
                return 1;
            }
            bytes += out.len[0] + out.len[1] + out.len[2];
        }
        double dt = bench_cpu_seconds() - t0;
        rate[r] = (double)per_run / dt;
        printf("run %d: %ld entries in %.3f s CPU = %.0f entries/s (%.2f us/entry)\n", r + 1, per_run, dt, rate[r],
               dt / (double)per_run * 1e6);
    }
    double median = bench_median(rate, (size_t)runs);
    uint64_t hits, misses;
    pipeline_cache_stats(p, &hits, &misses);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("median: %.0f entries/s per core (%.2f us/entry); min %.0f, max %.0f\n", median,
           1e6 / median, rate[0], rate[runs - 1]);
    printf("chain cache: %llu hits, %llu misses; output %.1f MB; peak RSS %ld KB\n", (unsigned long long)hits,
           (unsigned long long)misses, (double)bytes / 1e6, ru.ru_maxrss);
    pipeline_free(p);
    bench_corpus_free(&corpus);
    return 0;
}
