/* shm_test.h - the tiny harness shared by the shm tests.
 *
 * A case is a function; CHECK records a failure with its line and the case
 * goes on, so one run shows every broken expectation. Each binary ends with
 * the line "N passed, N failed" (cases, not checks) and exits non-zero on any
 * failure. */
#ifndef CS_SHM_TEST_H
#define CS_SHM_TEST_H

#include "shm/ring.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>

static int g_case_failed, g_cases_passed, g_cases_failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            g_case_failed = 1;                                                         \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                              \
    } while (0)

#define RUN(fn)                                                        \
    do {                                                               \
        g_case_failed = 0;                                             \
        fprintf(stderr, "- %s\n", #fn);                                \
        fn();                                                          \
        if (g_case_failed) {                                           \
            g_cases_failed++;                                          \
            fprintf(stderr, "  FAILED %s\n", #fn);                     \
        } else {                                                       \
            g_cases_passed++;                                          \
        }                                                              \
    } while (0)

/* RFC 6455 5.2 decoder for a server frame header: FIN, RSV 0, opcode, no
 * mask, and the minimal length encoding. Returns header length or 0. */
static inline size_t ws_decode(const uint8_t *p, uint64_t *len)
{
    if (p[0] != 0x81 || (p[1] & 0x80) != 0)
        return 0;
    unsigned l7 = p[1] & 0x7f;
    if (l7 < 126) {
        *len = l7;
        return 2;
    }
    if (l7 == 126) {
        *len = (uint64_t)p[2] << 8 | p[3];
        return *len >= 126 ? 4 : 0;
    }
    if (p[2] & 0x80)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[2 + i];
    *len = v;
    return v > 0xffff ? 10 : 0;
}

/* splitmix64's finalizer: well-spread test keys and sizes from a counter. */
static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* SIGKILLs pid and reaps it: true when it really died of that SIGKILL. */
static inline bool kill_reap(pid_t pid)
{
    int st = 0;
    return kill(pid, SIGKILL) == 0 && waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) &&
           WTERMSIG(st) == SIGKILL;
}

/* A ring whose records carry checksums, so every read can be verified. */
static inline struct ring *test_ring_create(size_t size)
{
    struct ring *r = ring_create(size);
    if (r)
        ring_set_checksums(r, true);
    return r;
}

static inline int test_report(void)
{
    printf("%d passed, %d failed\n", g_cases_passed, g_cases_failed);
    return g_cases_failed ? 1 : 0;
}

/* FNV-1a, 32-bit: written here from its definition, independent of ring.c. */
static inline uint32_t test_fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x01000193u;
    return h;
}

#endif
