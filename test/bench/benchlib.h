/* benchlib.h - what the C benchmarks under test/bench share: the process's
 * CPU time, the median of a run's figures, and the golden corpus
 * (TESTDATA/golden/live_ct.json, the real CT entries with the messages
 * expected from them) read once, its entries decoded from base64 up front
 * so that a benchmark measures only what it is about. */
#ifndef CS_BENCHLIB_H
#define CS_BENCHLIB_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* CPU seconds of this process (CLOCK_PROCESS_CPUTIME_ID): on a shared,
 * noisy machine wall time would measure the neighbours too. */
double bench_cpu_seconds(void);

/* Sorts v[0..n-1] ascending and returns its median (v[n / 2]); after the
 * call v[0] and v[n - 1] are the minimum and the maximum. n >= 1. */
double bench_median(double *v, size_t n);

/* One corpus entry as a log serves it: leaf_input and extra_data decoded. */
struct bench_entry {
    uint8_t *leaf, *extra;
    size_t leaf_len, extra_len;
    uint64_t index;             /* cert_index */
    const char *log_name, *log_url;   /* point into the corpus's JSON */
};

struct bench_corpus {
    cJSON *json;                /* the whole file: expected_full, expected_lite, ... per entry */
    struct bench_entry *entries;
    size_t n;
};

/* Reads and decodes TESTDATA/golden/live_ct.json into c. 0, or -1 with the
 * reason on stderr (and nothing left to free). */
int bench_corpus_load(struct bench_corpus *c, const char *testdata);
void bench_corpus_free(struct bench_corpus *c);

#endif
