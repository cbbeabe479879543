/* unit_check.h - the assertion helpers and the table runner that the C unit
 * tests share: a failed check prints file, line and expression and is
 * counted; run_unit_tests() runs a table of cases and prints the plain
 * closing line "N passed, N failed". Header-only: each test program has one
 * translation unit. */
#ifndef CS_TEST_UNIT_CHECK_H
#define CS_TEST_UNIT_CHECK_H

#include <stdio.h>
#include <string.h>

static int unit_failed; /* checks failed so far */

#define CHECK(cond) do { \
    if (!(cond)) { \
        fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        unit_failed++; \
    } \
} while (0)

#define CHECK_STR(got, want) do { \
    const char *g_ = (got), *w_ = (want); \
    if (!g_ || strcmp(g_, w_) != 0) { \
        fprintf(stderr, "  %s:%d: %s\n    got:  %s\n    want: %s\n", __FILE__, __LINE__, \
                #got, g_ ? g_ : "(null)", w_); \
        unit_failed++; \
    } \
} while (0)

struct unit_test {
    const char *name;
    void (*fn)(void);
};

/* Runs each case; a case passes when it fails no check. Returns the exit status. */
static inline int run_unit_tests(const struct unit_test *t, size_t n)
{
    int pass = 0, fail = 0;
    for (size_t i = 0; i < n; i++) {
        int before = unit_failed;
        t[i].fn();
        if (unit_failed == before) { pass++; printf("ok %s\n", t[i].name); }
        else { fail++; printf("FAIL %s\n", t[i].name); }
    }
    printf("%d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}

#endif
