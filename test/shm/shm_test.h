/* shm_test.h - the tiny harness shared by the shm tests.
 *
 * A case is a function; CHECK records a failure with its line and the case
 * goes on, so one run shows every broken expectation. Each binary ends with
 * the line "N passed, N failed" (cases, not checks) and exits non-zero on any
 * failure. */
#ifndef CS_SHM_TEST_H
#define CS_SHM_TEST_H

#include <stdint.h>
#include <stdio.h>

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
